//! `/connect`: the first frame, every auth and validation error code, health checks and pings,
//! hostile frames, periodic health and token expiry.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

fn is_uuid_shaped(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[tokio::test]
async fn first_frame_is_health_check_with_full_me_and_merged_privacy() {
    let h = start().await;
    let details = json!({"id": "amin", "name": "Amin", "color": "blue",
        "privacy_settings": {"typing_indicators": {"enabled": false}}});
    let (_ws, first) = connect_details(&h, "amin", details).await;
    assert!(is_uuid_shaped(first["connection_id"].as_str().unwrap_or("")), "{first}");
    assert_eq!(first["cid"], "*");
    assert!(first["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let me = &first["me"];
    assert_eq!(me["id"], "amin");
    assert_eq!(me["name"], "Amin");
    assert_eq!(me["color"], "blue", "custom fields are flattened into me");
    assert_eq!(me["online"], true);
    assert_eq!(me["mutes"], json!([]));
    assert_eq!(me["channel_mutes"], json!([]));
    assert_eq!(me["devices"], json!([]));
    assert!(me["total_unread_count"].is_number() && me["unread_channels"].is_number());
    assert_eq!(me["privacy_settings"]["typing_indicators"]["enabled"], false);
    // A second connect that only sets read_receipts keeps typing_indicators (merge, not replace).
    let details = json!({"id": "amin", "privacy_settings": {"read_receipts": {"enabled": false}}});
    let (_ws2, second) = connect_details(&h, "amin", details).await;
    assert_ne!(second["connection_id"], first["connection_id"]);
    assert_eq!(second["me"]["privacy_settings"]["typing_indicators"]["enabled"], false);
    assert_eq!(second["me"]["privacy_settings"]["read_receipts"]["enabled"], false);
    assert_eq!(h.control.stats().live_connections, 2);
    h.shutdown().await;
}

#[tokio::test]
async fn header_auth_wins_over_query_auth() {
    let h = start().await;
    let q = connect_query("hana", "garbage", json!({"id": "hana"}));
    let mut ws = open(
        &h,
        &q,
        &[("Authorization", &user_token("hana")), ("Stream-Auth-Type", "jwt")],
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "health.check");
    let q = connect_query("hana", &user_token("hana"), json!({"id": "hana"}));
    let mut ws = open(&h, &q, &[("Authorization", "not.a.jwt")]).await;
    expect_rejected(&mut ws, 5).await;
    // Swift style: no authorization query parameter at all, headers only.
    let payload = json!({"user_id": "hana", "user_details": {"id": "hana"}, "server_determines_connection_id": true});
    let q = format!(
        "api_key={KEY}&json={}",
        form_urlencoded::byte_serialize(payload.to_string().as_bytes()).collect::<String>()
    );
    let mut ws = open(
        &h,
        &q,
        &[("Authorization", &user_token("hana")), ("Stream-Auth-Type", "jwt")],
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "health.check");
    h.shutdown().await;
}

async fn rejected_with(h: &chatstorm_mock::MockHandle, query: &str, code: i64) -> serde_json::Value {
    let mut ws = open(h, query, &[]).await;
    expect_rejected(&mut ws, code).await
}

#[tokio::test]
async fn every_connect_error_code_comes_as_one_frame_then_close_1000() {
    let h = start().await;
    let d = json!({"id": "u1"});
    let t = now();
    let wrong_key = connect_query("u1", &user_token("u1"), d.clone()).replace(KEY, "nope");
    rejected_with(&h, &wrong_key, 2).await;
    let e = rejected_with(
        &h,
        &format!("api_key={KEY}&authorization={}&stream-auth-type=jwt", user_token("u1")),
        4,
    )
    .await;
    assert!(e["message"].as_str().unwrap_or("").contains("json"), "{e}");
    rejected_with(
        &h,
        &format!("api_key={KEY}&json=%7Bnot-json&authorization=x&stream-auth-type=jwt"),
        4,
    )
    .await;
    let e = rejected_with(&h, &connect_query("a|b", &user_token("a|b"), json!({"id": "a|b"})), 4).await;
    assert!(
        e["message"].as_str().unwrap_or("").contains("a-z"),
        "names the allowed set: {e}"
    );
    assert_eq!(e["StatusCode"], 400);
    let big = json!({"id": "u1", "bio": "x".repeat(6 * 1024)});
    let e = rejected_with(&h, &connect_query("u1", &user_token("u1"), big), 4).await;
    assert!(e["message"].as_str().unwrap_or("").contains("5 KB"), "{e}");
    rejected_with(&h, &connect_query("u1", &user_token("someone-else"), d.clone()), 5).await;
    let e = rejected_with(
        &h,
        &connect_query("u1", &token(json!({"user_id": "u1", "exp": t - 10})), d.clone()),
        40,
    )
    .await;
    assert_eq!(e["StatusCode"], 401);
    rejected_with(
        &h,
        &connect_query("u1", &token(json!({"user_id": "u1", "nbf": t + 3600})), d.clone()),
        41,
    )
    .await;
    rejected_with(
        &h,
        &connect_query("u1", &token(json!({"user_id": "u1", "iat": t + 3600})), d.clone()),
        42,
    )
    .await;
    let forged = sign_with(&json!({"user_id": "u1"}), "another-secret");
    rejected_with(&h, &connect_query("u1", &forged, d.clone()), 43).await;
    rejected_with(&h, &connect_query("u1", "only.two", d.clone()), 5).await;
    rejected_with(&h, &connect_query("u1", &alg_none_token("u1"), d.clone()), 5).await;
    rejected_with(&h, &connect_query("u1", &token(json!({"user_id": 42})), d.clone()), 5).await;
    let dev = format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.devtoken",
        base64_std(r#"{"user_id":"u1"}"#)
    );
    rejected_with(&h, &connect_query("u1", &dev, d.clone()), 5).await;
    let no_type =
        connect_query("u1", &user_token("u1"), d.clone()).replace("stream-auth-type=jwt", "stream-auth-type=bogus");
    rejected_with(&h, &no_type, 5).await;
    let rejected = h.control.stats().connect_rejected_total;
    assert_eq!(rejected, 15);
    // The server keeps serving.
    connect(&h, "u2").await;
    h.shutdown().await;
}

fn base64_std(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn dev_tokens_are_accepted_only_when_allowed() {
    let h = start_with(chatstorm_mock::MockConfig {
        allow_dev_tokens: true,
        ..config()
    })
    .await;
    let dev = format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.devtoken",
        base64_std(r#"{"user_id":"dev"}"#)
    );
    let mut ws = open(&h, &connect_query("dev", &dev, json!({"id": "dev"})), &[]).await;
    assert_eq!(next_json(&mut ws).await["me"]["id"], "dev");
    h.shutdown().await;
}

#[tokio::test]
async fn health_checks_in_every_form_and_pings_are_answered() {
    let h = start().await;
    let (mut ws, first) = connect(&h, "hc").await;
    let cid = first["connection_id"].clone();
    for frame in [
        r#"[{"type":"health.check","client_id":"hc--1"}]"#.to_owned(),
        json!({"type": "health.check", "connection_id": cid}).to_string(),
        r#"{"Type":"health.check"}"#.to_owned(),
        r#"{"TYPE":"Health.Check"}"#.replace("Health.Check", "health.check"),
    ] {
        send_text(&mut ws, &frame).await;
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["type"], "health.check", "reply to {frame}");
        assert_eq!(reply["connection_id"], cid);
        assert!(reply.get("me").is_none());
    }
    ws.send(Message::Ping(b"p".to_vec().into())).await.expect("ping");
    let mut got_pong = false;
    let reply = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws))
            .await
            .expect("in time")
        {
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(&p[..], b"p");
                got_pong = true;
            }
            Some(Ok(Message::Text(t))) => {
                break serde_json::from_str::<serde_json::Value>(&t).expect("json");
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(reply["type"], "health.check");
    if !got_pong {
        // The pong may follow the health check; it must still come.
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws))
            .await
            .expect("in time")
        {
            Some(Ok(Message::Pong(_))) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn garbage_frames_get_code_4_and_the_socket_stays_open() {
    let h = start().await;
    let (mut ws, _) = connect(&h, "garbage").await;
    for g in ["{not json", "42", "\"str\""] {
        send_text(&mut ws, g).await;
        let f = next_json(&mut ws).await;
        assert_eq!(f["type"], "connection.error");
        assert_eq!(f["error"]["code"], 4);
    }
    ws.send(Message::Binary(vec![0, 1, 2].into())).await.expect("binary");
    assert_eq!(next_json(&mut ws).await["error"]["code"], 4);
    send_text(&mut ws, r#"{"type":"something.else"}"#).await;
    send_text(&mut ws, r#"{"type":"health.check"}"#).await;
    assert_eq!(
        next_json(&mut ws).await["type"],
        "health.check",
        "other JSON is ignored, the socket still answers"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_10_mb_frame_gets_close_1009_and_others_are_still_served() {
    let h = start().await;
    let (mut ws, _) = connect(&h, "big").await;
    let huge = "x".repeat(10 * 1024 * 1024);
    // The server may close before the whole frame is written; that send error is expected.
    let _ = ws.send(Message::Text(huge.into())).await;
    let close = closed(&mut ws).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    let (mut other, _) = connect(&h, "small").await;
    send_text(&mut other, r#"{"type":"health.check"}"#).await;
    assert_eq!(next_json(&mut other).await["type"], "health.check");
    h.shutdown().await;
}

#[tokio::test]
async fn periodic_health_checks_follow_the_configured_interval() {
    let h = start_with(chatstorm_mock::MockConfig {
        health_interval: Duration::from_millis(300),
        ..config()
    })
    .await;
    let (mut ws, first) = connect(&h, "tick").await;
    let t0 = Instant::now();
    let a = next_json(&mut ws).await;
    let b = next_json(&mut ws).await;
    assert_eq!(a["type"], "health.check");
    assert_eq!(b["connection_id"], first["connection_id"]);
    assert!(
        t0.elapsed() >= Duration::from_millis(550),
        "two ticks take at least two intervals"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn expiry_kick_sends_code_40_then_close_1000_and_keep_does_not() {
    let kick = start_with(chatstorm_mock::MockConfig {
        expiry: chatstorm_mock::ExpiryPolicy::Kick,
        ..config()
    })
    .await;
    // Whole seconds: an exp one second ahead may be only milliseconds away.
    let tok = token(json!({"user_id": "exp", "exp": now() + 3}));
    let mut ws = open(&kick, &connect_query("exp", &tok, json!({"id": "exp"})), &[]).await;
    assert_eq!(next_json(&mut ws).await["type"], "health.check");
    let e = expect_rejected(&mut ws, 40).await;
    assert!(e["message"].as_str().unwrap_or("").contains("expired"), "{e}");

    let far = token(json!({"user_id": "far", "exp": i64::MAX}));
    let mut ws = open(&kick, &connect_query("far", &far, json!({"id": "far"})), &[]).await;
    assert_eq!(
        next_json(&mut ws).await["type"],
        "health.check",
        "an exp far in the future is fine"
    );
    kick.shutdown().await;

    let keep = start().await;
    let exp = now() + 3;
    let tok = token(json!({"user_id": "exp", "exp": exp}));
    let mut ws = open(&keep, &connect_query("exp", &tok, json!({"id": "exp"})), &[]).await;
    assert_eq!(next_json(&mut ws).await["type"], "health.check");
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send_text(&mut ws, r#"{"type":"health.check"}"#).await;
    assert_eq!(
        next_json(&mut ws).await["type"],
        "health.check",
        "socket kept after exp"
    );
    keep.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let h = start().await;
    let (mut ws, _) = connect(&h, "bye").await;
    h.cancel.cancel();
    let close = closed(&mut ws).await.expect("close frame");
    assert_eq!(u16::from(close.code), 1001);
}

/// The socket's read buffer is 512 bytes: client frames many times that size (a long health
/// check, then a second one right behind it) are still read whole and answered in order.
#[tokio::test]
async fn client_frames_larger_than_the_read_buffer_are_read_whole() {
    let h = start().await;
    let (mut ws, first) = connect(&h, "big_frames").await;
    let cid = first["connection_id"].as_str().expect("connection_id").to_owned();
    for len in [20_000, 3_000] {
        let frame = json!({"type": "health.check", "client_id": "c".repeat(len)}).to_string();
        send_text(&mut ws, &frame).await;
    }
    for _ in 0..2 {
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["type"], "health.check", "{reply}");
        assert_eq!(reply["connection_id"], cid.as_str());
    }
    h.shutdown().await;
}
