//! Fault control: the HTTP contract, dropping sockets, half-open users, latency, token expiry, slow
//! consumers, and each named violation changing behaviour observably.

use std::time::{Duration, Instant};

use chatstorm_mock::Violation;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

async fn on(h: &chatstorm_mock::MockHandle, name: &str) {
    let r = fault(h, "POST", "/_fault/violations", json!({"enable": [name]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["enabled"].as_array().expect("list").contains(&json!(name)));
}

async fn custom_event(h: &chatstorm_mock::MockHandle, channel: &str, name: &str) {
    let r = rest(
        h,
        "POST",
        &format!("/channels/messaging/{channel}/event"),
        "sender",
        None,
        json!({"event": {"type": "marker", "name": name}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn the_fault_api_needs_the_secret_and_validates_bodies() {
    let h = start().await;
    let r = http(&h, "GET", "/_fault/stats", &[], None).await;
    assert_eq!(r.status, 401);
    let r = http(
        &h,
        "GET",
        "/_fault/stats",
        &[("x-chatstorm-secret", "wrong".into())],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    // The app secret signs tokens; it does not open the fault API.
    let r = http(
        &h,
        "GET",
        "/_fault/stats",
        &[("x-chatstorm-secret", SECRET.into())],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = fault(&h, "GET", "/_fault/violations", json!(null)).await;
    assert_eq!(
        r.body["available"].as_array().map(Vec::len),
        Some(chatstorm_mock::Violation::ALL.len())
    );
    assert_eq!(r.body["enabled"], json!([]));
    let r = fault(&h, "POST", "/_fault/violations", json!({"enable": ["no_such_thing"]})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"].as_str().unwrap_or("").contains("omit_me"),
        "lists the known names"
    );
    assert_eq!(
        fault(&h, "POST", "/_fault/drop", json!({"fraction": 2.0})).await.status,
        400
    );
    assert_eq!(
        fault(&h, "POST", "/_fault/drop", json!({"code": 1006})).await.status,
        400
    );
    assert_eq!(fault(&h, "POST", "/_fault/drop", json!({"bogus": 1})).await.status, 400);
    assert_eq!(fault(&h, "POST", "/_fault/expire-tokens", json!({})).await.status, 400);
    assert_eq!(fault(&h, "POST", "/_fault/nowhere", json!({})).await.status, 404);
    let (_ws, _) = connect(&h, "s1").await;
    let s = fault(&h, "GET", "/_fault/stats", json!(null)).await.body;
    for k in [
        "live_connections",
        "longpoll_connections",
        "accepted_total",
        "dropped_slow_consumers",
        "longpoll_events_dropped",
    ] {
        assert!(s[k].is_u64(), "stats lacks {k}: {s}");
    }
    assert_eq!(s["live_connections"], 1);
    on(&h, "omit_me").await;
    fault(&h, "POST", "/_fault/latency", json!({"frame_ms": 5})).await;
    let st = fault(&h, "GET", "/_fault/state", json!(null)).await.body;
    assert_eq!(st["violations"], json!(["omit_me"]));
    assert_eq!(st["frame_latency_ms"], 5);
    fault(&h, "POST", "/_fault/reset", json!({})).await;
    let st = fault(&h, "GET", "/_fault/state", json!(null)).await.body;
    assert_eq!(st["violations"], json!([]));
    assert_eq!(st["frame_latency_ms"], 0);
    h.shutdown().await;
}

#[tokio::test]
async fn drop_closes_selected_sockets_cleanly_or_abruptly() {
    let h = start().await;
    let mut socks = Vec::new();
    for i in 0..4 {
        socks.push(connect(&h, &format!("d{i}")).await.0);
    }
    let r = fault(
        &h,
        "POST",
        "/_fault/drop",
        json!({"users": ["d0"], "mode": "close", "code": 1001}),
    )
    .await;
    assert_eq!(r.body["dropped"], 1);
    assert_eq!(closed(&mut socks[0]).await.map(|f| u16::from(f.code)), Some(1001));
    let r = fault(&h, "POST", "/_fault/drop", json!({"users": ["d1"], "mode": "abrupt"})).await;
    assert_eq!(r.body["dropped"], 1);
    assert!(
        closed(&mut socks[1]).await.is_none(),
        "no close frame: the client sees 1006"
    );
    let r = fault(&h, "POST", "/_fault/drop", json!({"fraction": 0.5, "seed": 7})).await;
    assert_eq!(r.body["dropped"], 1, "half of the two left");
    let mut left = 0;
    for ws in &mut socks[2..] {
        send_text(ws, r#"{"type":"health.check"}"#).await;
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(ws))
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(_))) => left += 1,
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1011, "default code")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(left, 1);
    assert_eq!(h.control.stats().fault_dropped_total, 3);
    h.shutdown().await;
}

#[tokio::test]
async fn half_open_users_get_silence_until_healed() {
    let h = start().await;
    let (mut ws, _) = watcher(&h, "half", "h1", &["half"]).await;
    let r = fault(&h, "POST", "/_fault/half-open", json!({"users": ["half"]})).await;
    assert_eq!(r.status, 200);
    send_text(&mut ws, r#"{"type":"health.check"}"#).await;
    ws.send(Message::Ping(Vec::new().into())).await.expect("ping");
    custom_event(&h, "h1", "lost").await;
    fault(&h, "POST", "/_fault/half-open", json!({})).await;
    custom_event(&h, "h1", "after").await;
    let ev = next_json(&mut ws).await;
    assert_eq!(
        ev["type"], "marker",
        "no health replies and no events while half-open: {ev}"
    );
    assert_eq!(ev["name"], "after");
    h.shutdown().await;
}

#[tokio::test]
async fn latency_and_first_frame_delay_are_applied() {
    let h = start().await;
    h.control.set_first_frame_delay(Duration::from_millis(300));
    let t0 = Instant::now();
    let (mut ws, _) = watcher(&h, "lat", "l1", &["lat"]).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    h.control.set_first_frame_delay(Duration::ZERO);
    fault(&h, "POST", "/_fault/latency", json!({"frame_ms": 300})).await;
    let t0 = Instant::now();
    custom_event(&h, "l1", "slow").await;
    assert_eq!(next_event(&mut ws).await["name"], "slow");
    assert!(t0.elapsed() >= Duration::from_millis(300));
    fault(&h, "POST", "/_fault/latency", json!({"frame_ms": 0, "request_ms": 300})).await;
    let t0 = Instant::now();
    assert_eq!(http(&h, "GET", "/hi", &[], None).await.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    h.shutdown().await;
}

#[tokio::test]
async fn expire_tokens_kicks_sockets_with_40_and_refuses_old_tokens() {
    let h = start().await;
    let (mut a, _) = connect(&h, "ex").await;
    let (mut b, _) = connect(&h, "other").await;
    let r = fault(
        &h,
        "POST",
        "/_fault/expire-tokens",
        json!({"users": ["ex"], "reason": "revoked"}),
    )
    .await;
    assert_eq!(r.body["kicked"], 1);
    let e = expect_rejected(&mut a, 40).await;
    assert!(e["message"].as_str().unwrap_or("").contains("revoked"), "{e}");
    let mut again = open(&h, &connect_query("ex", &user_token("ex"), json!({"id": "ex"})), &[]).await;
    expect_rejected(&mut again, 40).await;
    assert_error(&rest(&h, "POST", "/channels", "ex", None, json!({})).await, 401, 40);
    let fresh = token(json!({"user_id": "ex", "iat": now() + 1}));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut ok = open(&h, &connect_query("ex", &fresh, json!({"id": "ex"})), &[]).await;
    assert_eq!(
        next_json(&mut ok).await["type"],
        "health.check",
        "a token issued after the cut-off works"
    );
    send_text(&mut b, r#"{"type":"health.check"}"#).await;
    assert_eq!(
        next_json(&mut b).await["type"],
        "health.check",
        "other users are untouched"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_consumer_whose_outbox_fills_is_dropped_and_counted() {
    let h = start_with(chatstorm_mock::MockConfig {
        outbox_limit: 2,
        ..config()
    })
    .await;
    let (mut slow, _) = watcher(&h, "slow", "s1", &["slow", "fast"]).await;
    let (mut fast, _) = watcher(&h, "fast", "s1", &["slow", "fast"]).await;
    // Latency holds the writer back, so the outbox fills while events keep coming.
    h.control.set_latency(Some(Duration::from_millis(400)), None);
    for i in 0..6 {
        custom_event(&h, "s1", &format!("e{i}")).await;
    }
    let close = closed(&mut slow).await;
    assert!(close.as_ref().is_none_or(|f| u16::from(f.code) == 1011), "{close:?}");
    assert!(h.control.stats().dropped_slow_consumers >= 1);
    let _ = &mut fast;
    h.shutdown().await;
}

#[tokio::test]
async fn each_connect_violation_changes_what_the_client_sees() {
    let h = start().await;
    on(&h, "omit_me").await;
    let (_ws, first) = connect(&h, "v1").await;
    assert!(first.get("me").is_none(), "{first}");
    fault(&h, "POST", "/_fault/reset", json!({})).await;

    on(&h, "wrong_expired_code").await;
    let expired = token(json!({"user_id": "v1", "exp": now() - 5}));
    let mut ws = open(&h, &connect_query("v1", &expired, json!({"id": "v1"})), &[]).await;
    expect_rejected(&mut ws, 43).await;
    fault(&h, "POST", "/_fault/reset", json!({})).await;

    on(&h, "error_close_1006").await;
    let mut ws = open(&h, &connect_query("v1", &expired, json!({"id": "v1"})), &[]).await;
    assert_eq!(next_json(&mut ws).await["error"]["code"], 40);
    assert!(closed(&mut ws).await.is_none(), "no close frame after the error");
    fault(&h, "POST", "/_fault/reset", json!({})).await;

    on(&h, "incomplete_error_body").await;
    let mut ws = open(&h, &connect_query("v1", &expired, json!({"id": "v1"})), &[]).await;
    let e = next_json(&mut ws).await["error"].clone();
    assert!(e.get("StatusCode").is_none() && e.get("more_info").is_none(), "{e}");
    let r = rest_token(&h, "POST", "/channels", "v1", &expired, None, json!({})).await;
    assert!(r.body.get("StatusCode").is_none(), "{}", r.body);
    fault(&h, "POST", "/_fault/reset", json!({})).await;

    on(&h, "accept_alg_none").await;
    let mut ws = open(
        &h,
        &connect_query("v1", &alg_none_token("v1"), json!({"id": "v1"})),
        &[],
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "health.check");
    fault(&h, "POST", "/_fault/reset", json!({})).await;

    on(&h, "same_connection_id").await;
    let (mut a, first) = connect(&h, "v2").await;
    a.close(None).await.expect("close");
    let _ = closed(&mut a).await;
    // Wait until the server has forgotten the first socket.
    let deadline = Instant::now() + WAIT;
    while h.control.stats().live_connections > 2 && Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_b, second) = connect(&h, "v2").await;
    assert_eq!(second["connection_id"], first["connection_id"]);
    h.shutdown().await;
}

#[tokio::test]
async fn health_violations_silence_replies_and_slow_the_interval() {
    let h = start().await;
    let (mut ws, _) = watcher(&h, "hv", "hv1", &["hv"]).await;
    h.control.set_violation(Violation::NoHealthReply, true);
    send_text(&mut ws, r#"[{"type":"health.check","client_id":"hv--1"}]"#).await;
    custom_event(&h, "hv1", "m1").await;
    assert_eq!(
        next_json(&mut ws).await["type"],
        "marker",
        "no reply to the health check"
    );
    h.control.set_violation(Violation::NoHealthReply, false);
    h.control.set_violation(Violation::NoPingReply, true);
    ws.send(Message::Ping(b"x".to_vec().into())).await.expect("ping");
    custom_event(&h, "hv1", "m2").await;
    let ev = next_json(&mut ws).await;
    assert_eq!(ev["name"], "m2", "no health.check after the ping: {ev}");
    h.shutdown().await;

    let h = start_with(chatstorm_mock::MockConfig {
        health_interval: Duration::from_millis(400),
        ..config()
    })
    .await;
    h.control.set_violation(Violation::HealthIntervalX2, true);
    let t0 = Instant::now();
    let (mut ws, _) = connect(&h, "x2").await;
    let tick = next_json(&mut ws).await;
    assert_eq!(tick["type"], "health.check");
    assert!(t0.elapsed() >= Duration::from_millis(800), "the interval doubled");
    let _: Value = tick;
    h.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let cfg = chatstorm_mock::MockConfig {
        outbox_limit: 100_000,
        write_timeout: Duration::from_millis(300),
        ..config()
    };
    let h = start_with(cfg).await;
    let (_stuck, _) = watcher(&h, "stuck", "wt", &["stuck"]).await;
    let pad = "x".repeat(60_000);
    let deadline = Instant::now() + WAIT;
    // Loopback buffers hold a few MB; keep sending until the writer stalls and gives up.
    while h.control.stats().dropped_slow_consumers == 0 {
        assert!(Instant::now() < deadline, "a stalled writer was never dropped");
        let r = rest(
            &h,
            "POST",
            "/channels/messaging/wt/event",
            "sender",
            None,
            json!({"event": {"type": "big", "pad": pad}}),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let deadline = Instant::now() + WAIT;
    while h.control.stats().live_connections > 0 {
        assert!(Instant::now() < deadline, "the stuck socket was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown().await;
}
