//! What a server must do for Unity clients (PROTOCOL.md U.7), checked over real sockets with a raw
//! client that speaks as the Unity SDK: query-only auth and PascalCase `Id`, one JSON object per
//! text frame, `created_at` on every event the mock sends, string-only `details` in errors, a
//! `health.check` under 30 s without any help from the client, and `{"Type":"health.check"}`
//! accepted and answered.

use std::collections::BTreeSet;
use std::time::Duration;

use chatstorm_mock::{ClientAct, ExpireRequest, MockConfig};
use chatstorm_protocol::User;
use chatstorm_protocol::connect::{AuthType, ConnectPayload, Profile, build_connect_request};
use chatstorm_protocol::event::client_health_check_unity;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

/// Opens a socket exactly as the Unity SDK does: auth in the query only, no headers.
async fn unity_open(h: &chatstorm_mock::MockHandle, user: &str, details: Option<Value>) -> Ws {
    let tok = user_token(user);
    let mut payload = ConnectPayload::for_profile(Profile::Unity, &User::new(user), &tok, false, "unused");
    if let Some(d) = details {
        payload.user_details = d;
    }
    let req = build_connect_request(Profile::Unity, KEY, &tok, AuthType::Jwt, &payload);
    assert!(
        req.headers.is_empty(),
        "Unity sets no upgrade headers: {:?}",
        req.headers
    );
    open(h, req.path_and_query.trim_start_matches("/connect?"), &[]).await
}

/// The next frame, checked the way Unity's `JObject.Parse` and its event handlers need it: a text
/// frame holding one JSON object with `type` and an RFC 3339 `created_at`; an error's `details`
/// only strings.
async fn unity_frame(ws: &mut Ws) -> Value {
    unity_frame_within(ws, WAIT).await
}

/// [`unity_frame`] with its own deadline (paused-time tests wait out server intervals).
async fn unity_frame_within(ws: &mut Ws, wait: Duration) -> Value {
    let msg = tokio::time::timeout(wait, ws.next()).await.expect("a frame in time");
    let text = match msg {
        Some(Ok(Message::Text(t))) => t,
        other => panic!("Unity reads text frames only, got {other:?}"),
    };
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let obj = v.as_object().unwrap_or_else(|| panic!("not one JSON object: {text}"));
    assert!(obj.get("type").and_then(Value::as_str).is_some(), "no type: {text}");
    let created = obj.get("created_at").and_then(Value::as_str);
    assert!(
        created.and_then(chatstorm_protocol::time::parse_rfc3339).is_some(),
        "no RFC 3339 created_at: {text}"
    );
    if let Some(details) = v.pointer("/error/details") {
        let all_strings = details.as_array().is_some_and(|d| d.iter().all(Value::is_string));
        assert!(all_strings, "details must be strings: {text}");
    }
    v
}

/// Reads checked frames until one of `kind`, noting every type seen.
async fn until(ws: &mut Ws, kind: &str, seen: &mut BTreeSet<String>) -> Value {
    loop {
        let v = unity_frame(ws).await;
        let t = v["type"].as_str().unwrap_or_default().to_owned();
        seen.insert(t.clone());
        if t == kind {
            return v;
        }
    }
}

#[tokio::test]
async fn every_event_a_unity_socket_gets_is_one_object_with_created_at() {
    let h = start().await;
    let mut seen = BTreeSet::new();
    let mut u = unity_open(&h, "unity-a", None).await;
    let first = until(&mut u, "health.check", &mut seen).await;
    let ucid = first["connection_id"].as_str().expect("connection_id").to_owned();
    assert_eq!(first["me"]["id"], "unity-a", "{first}");
    // Unity watches with presence:true (U.6); the second channel is one it only belongs to.
    let watch = json!({"data": {"members": ["unity-a", "js-b"]}, "state": true, "watch": true, "presence": true});
    let r = rest(
        &h,
        "POST",
        "/channels/messaging/u-room/query",
        "unity-a",
        Some(&ucid),
        watch,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let other = json!({"data": {"members": ["unity-a", "js-b"]}});
    let r = rest(&h, "POST", "/channels/messaging/u-other/query", "js-b", None, other).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let (b, bcid) = watcher(&h, "js-b", "u-room", &["unity-a", "js-b"]).await;
    until(&mut u, "user.watching.start", &mut seen).await;
    for ty in ["typing.start", "typing.stop"] {
        // Unity sends its DTO's default `created_at`; the server stamps its own (U.7 item 7).
        let body = json!({"event": {"type": ty, "created_at": "0001-01-01T00:00:00+00:00"}});
        rest(
            &h,
            "POST",
            "/channels/messaging/u-room/event",
            "js-b",
            Some(&bcid),
            body,
        )
        .await;
        let ev = until(&mut u, ty, &mut seen).await;
        assert!(
            !ev["created_at"].as_str().unwrap_or_default().starts_with("0001"),
            "{ev}"
        );
    }
    let msg = json!({"message": {"text": "hi unity"}});
    rest(&h, "POST", "/channels/messaging/u-room/message", "js-b", None, msg).await;
    until(&mut u, "message.new", &mut seen).await;
    rest(
        &h,
        "POST",
        "/channels/messaging/u-room/read",
        "js-b",
        Some(&bcid),
        json!({}),
    )
    .await;
    until(&mut u, "message.read", &mut seen).await;
    rest(
        &h,
        "POST",
        "/channels/messaging/u-room/read",
        "unity-a",
        Some(&ucid),
        json!({}),
    )
    .await;
    until(&mut u, "notification.mark_read", &mut seen).await;
    let msg = json!({"message": {"text": "elsewhere"}});
    rest(&h, "POST", "/channels/messaging/u-other/message", "js-b", None, msg).await;
    until(&mut u, "notification.message_new", &mut seen).await;
    let up = json!({"users": {"unity-a": {"id": "unity-a", "name": "Unity A"}}});
    let r = rest(&h, "POST", "/users", "unity-a", None, up).await;
    assert!(r.status < 300, "{}", r.body);
    until(&mut u, "user.updated", &mut seen).await;
    drop(b);
    until(&mut u, "user.watching.stop", &mut seen).await;
    until(&mut u, "user.presence.changed", &mut seen).await;
    futures_util::SinkExt::send(&mut u, Message::text(client_health_check_unity()))
        .await
        .expect("send");
    until(&mut u, "health.check", &mut seen).await;
    h.control.expire_tokens(&ExpireRequest {
        users: vec!["unity-a".into()],
        ..Default::default()
    });
    let err = until(&mut u, "connection.error", &mut seen).await;
    assert_eq!(err["error"]["code"], 40, "{err}");
    let close = closed(&mut u).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1000);

    let want = [
        "connection.error",
        "health.check",
        "message.new",
        "message.read",
        "notification.mark_read",
        "notification.message_new",
        "typing.start",
        "typing.stop",
        "user.presence.changed",
        "user.updated",
        "user.watching.start",
        "user.watching.stop",
    ];
    for w in want {
        assert!(seen.contains(w), "never saw {w}: {seen:?}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn rest_errors_carry_string_only_details() {
    let h = start().await;
    let expired = token(json!({"user_id": "unity-a", "exp": now() - 60, "iat": now() - 120}));
    let r = rest_token(
        &h,
        "POST",
        "/channels/messaging/x/query",
        "unity-a",
        &expired,
        None,
        json!({}),
    )
    .await;
    assert_error(&r, 401, 40);
    let details = r.body["details"].as_array().expect("details is an array");
    assert!(details.iter().all(Value::is_string), "{}", r.body);
    h.shutdown().await;
}

#[tokio::test]
async fn user_details_keys_match_in_any_case() {
    let h = start().await;
    let details =
        json!({"Id": "unity-c", "Name": "Unity C", "Privacy_Settings": {"Typing_Indicators": {"Enabled": false}}});
    let mut ws = unity_open(&h, "unity-c", Some(details)).await;
    let first = unity_frame(&mut ws).await;
    let me = &first["me"];
    assert_eq!(me["id"], "unity-c", "{first}");
    assert_eq!(me["name"], "Unity C", "{first}");
    assert_eq!(me["privacy_settings"]["typing_indicators"]["enabled"], false, "{first}");
    assert!(me.get("Id").is_none() && me.get("Name").is_none(), "{first}");
    // A PascalCase `Id` that names someone else is refused like a lower-case one.
    let mut bad = unity_open(&h, "unity-d", Some(json!({"Id": "someone-else"}))).await;
    let e = expect_rejected(&mut bad, 4).await;
    assert!(
        e["message"].as_str().unwrap_or_default().contains("user_details.id"),
        "{e}"
    );
    h.shutdown().await;
}

/// The default configuration, paused time: the mock's own pushes keep a silent Unity socket under
/// 30 s between `health.check`s, and a PascalCase check is answered at once and journaled as such.
#[tokio::test(start_paused = true)]
async fn a_silent_unity_socket_gets_a_health_check_under_every_30_s() {
    let h = start_with(MockConfig {
        api_key: KEY.into(),
        secret: SECRET.into(),
        ..MockConfig::default()
    })
    .await;
    h.control.record_clients(true);
    let mut ws = unity_open(&h, "unity-e", None).await;
    let mut last = Instant::now();
    unity_frame(&mut ws).await;
    let mut gaps = Vec::new();
    for _ in 0..4 {
        let v = unity_frame_within(&mut ws, Duration::from_secs(60)).await;
        assert_eq!(v["type"], "health.check", "{v}");
        assert!(v.get("me").is_none(), "periodic checks carry no me: {v}");
        let now = Instant::now();
        gaps.push(now - last);
        last = now;
    }
    assert!(
        gaps.iter().all(|g| *g < Duration::from_secs(30) && *g > Duration::ZERO),
        "gaps between server health checks: {gaps:?}"
    );
    let sent = Instant::now();
    futures_util::SinkExt::send(&mut ws, Message::text(client_health_check_unity()))
        .await
        .expect("send");
    let reply = unity_frame(&mut ws).await;
    assert_eq!(reply["type"], "health.check");
    assert!(Instant::now() - sent < Duration::from_secs(1), "answered at once");
    let checks: Vec<ClientAct> = h
        .control
        .journal()
        .into_iter()
        .filter(|e| e.user == "unity-e")
        .map(|e| e.act)
        .filter(|a| matches!(a, ClientAct::HealthCheck { .. }))
        .collect();
    assert_eq!(
        checks,
        [ClientAct::HealthCheck {
            pascal_case: true,
            array: false
        }]
    );
    h.shutdown().await;
}
