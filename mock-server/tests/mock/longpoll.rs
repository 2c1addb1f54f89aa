//! `/longpoll`: connect, held polls, ordering, close, unknown ids, the bounded buffer, and the
//! fallback path while upgrades are refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::*;

fn auth(user: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", user_token(user)),
        ("stream-auth-type", "jwt".to_owned()),
    ]
}

async fn lp_connect(h: &chatstorm_mock::MockHandle, user: &str) -> String {
    let payload = json!({"user_id": user, "user_details": {"id": user}});
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("json", &payload.to_string())
        .append_pair("api_key", KEY)
        .append_pair("user_id", user)
        .finish();
    let r = http(h, "GET", &format!("/longpoll?{q}"), &auth(user), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = &r.body["event"];
    assert_eq!(ev["type"], "health.check");
    assert_eq!(ev["me"]["id"], user);
    assert_eq!(ev["me"]["mutes"], json!([]));
    ev["connection_id"].as_str().expect("connection_id").to_owned()
}

async fn lp_poll(h: &chatstorm_mock::MockHandle, user: &str, cid: &str) -> Resp {
    http(
        h,
        "GET",
        &format!("/longpoll?api_key={KEY}&user_id={user}&connection_id={cid}"),
        &auth(user),
        None,
    )
    .await
}

fn types(r: &Resp) -> Vec<String> {
    r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn send_markers(h: &chatstorm_mock::MockHandle, channel: &str, names: &[&str]) {
    for n in names {
        let r = rest(
            h,
            "POST",
            &format!("/channels/messaging/{channel}/event"),
            "writer",
            None,
            json!({"event": {"type": n}}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

async fn lp_watch(h: &chatstorm_mock::MockHandle, user: &str, cid: &str, channel: &str) {
    let body = json!({"data": {"members": [user, "writer"]}, "state": true, "watch": true});
    let r = rest(
        h,
        "POST",
        &format!("/channels/messaging/{channel}/query"),
        user,
        Some(cid),
        body,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn longpoll_connect_watch_and_poll_in_order() {
    let h = start().await;
    let cid = lp_connect(&h, "lp").await;
    assert_eq!(h.control.stats().longpoll_connections, 1);
    lp_watch(&h, "lp", &cid, "c1").await;
    send_markers(&h, "c1", &["e.one", "e.two", "e.three"]).await;
    let r = lp_poll(&h, "lp", &cid).await;
    assert_eq!(r.status, 200);
    assert_eq!(types(&r), ["e.one", "e.two", "e.three"]);
    assert!(r.body["duration"].is_string());
    // A held poll returns as soon as an event is pending, well before the hold time.
    let t0 = Instant::now();
    let (r, ()) = tokio::join!(lp_poll(&h, "lp", &cid), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send_markers(&h, "c1", &["e.late"]).await;
    });
    assert_eq!(types(&r), ["e.late"]);
    assert!(t0.elapsed() < Duration::from_secs(4), "did not wait for the 5 s hold");
    h.control
        .set_violation(chatstorm_mock::Violation::LongpollUnordered, true);
    send_markers(&h, "c1", &["x.1", "x.2"]).await;
    assert_eq!(types(&lp_poll(&h, "lp", &cid).await), ["x.2", "x.1"]);
    h.shutdown().await;
}

#[tokio::test]
async fn idle_polls_return_empty_after_the_hold() {
    let h = start_with(chatstorm_mock::MockConfig {
        longpoll_hold: Duration::from_millis(200),
        ..config()
    })
    .await;
    let cid = lp_connect(&h, "idle").await;
    let t0 = Instant::now();
    let r = lp_poll(&h, "idle", &cid).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["events"], json!([]));
    assert!(t0.elapsed() >= Duration::from_millis(200));
    h.shutdown().await;
}

#[tokio::test]
async fn close_and_unknown_ids_get_code_46() {
    let h = start().await;
    let cid = lp_connect(&h, "cl").await;
    // The JS SDK's close request carries no user_id.
    let r = http(
        &h,
        "GET",
        &format!("/longpoll?connection_id={cid}&api_key={KEY}&close=true"),
        &auth("cl"),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.control.stats().longpoll_connections, 0);
    assert_error(&lp_poll(&h, "cl", &cid).await, 400, 46);
    assert_error(&lp_poll(&h, "cl", "not-an-id").await, 400, 46);
    let r = http(&h, "GET", &format!("/longpoll?api_key={KEY}"), &auth("cl"), None).await;
    assert_error(&r, 400, 4);
    h.control
        .set_violation(chatstorm_mock::Violation::LongpollUnknownIdOk, true);
    let r = lp_poll(&h, "cl", &cid).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["events"], json!([]));
    h.shutdown().await;
}

#[tokio::test]
async fn the_buffer_is_bounded_and_drops_the_oldest() {
    let h = start_with(chatstorm_mock::MockConfig {
        longpoll_buffer: 3,
        ..config()
    })
    .await;
    let cid = lp_connect(&h, "buf").await;
    lp_watch(&h, "buf", &cid, "c2").await;
    send_markers(&h, "c2", &["b.1", "b.2", "b.3", "b.4", "b.5"]).await;
    assert_eq!(types(&lp_poll(&h, "buf", &cid).await), ["b.3", "b.4", "b.5"]);
    assert_eq!(h.control.stats().longpoll_events_dropped, 2);
    h.shutdown().await;
}

#[tokio::test]
async fn refused_upgrades_push_clients_to_longpoll_which_still_gets_events() {
    let h = start().await;
    let r = fault(
        &h,
        "POST",
        "/_fault/refuse-upgrades",
        json!({"duration_ms": 60_000, "mode": "503"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = format!(
        "{}/connect?{}",
        h.ws_url(),
        connect_query("fb", &user_token("fb"), json!({"id": "fb"}))
    );
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    let cid = lp_connect(&h, "fb").await;
    lp_watch(&h, "fb", &cid, "c3").await;
    send_markers(&h, "c3", &["fb.event"]).await;
    assert_eq!(types(&lp_poll(&h, "fb", &cid).await), ["fb.event"]);
    fault(
        &h,
        "POST",
        "/_fault/refuse-upgrades",
        json!({"duration_ms": 60_000, "mode": "close"}),
    )
    .await;
    assert!(
        tokio_tungstenite::connect_async(url.as_str()).await.is_err(),
        "closed without a response"
    );
    fault(&h, "POST", "/_fault/refuse-upgrades", json!({"duration_ms": 0})).await;
    connect(&h, "fb").await;
    h.shutdown().await;
}

#[tokio::test]
async fn longpoll_tokens_are_checked_on_every_poll() {
    let h = start().await;
    let cid = lp_connect(&h, "tk").await;
    let expired = vec![
        ("authorization", token(json!({"user_id": "tk", "exp": now() - 1}))),
        ("stream-auth-type", "jwt".to_owned()),
    ];
    let r = http(
        &h,
        "GET",
        &format!("/longpoll?api_key={KEY}&connection_id={cid}"),
        &expired,
        None,
    )
    .await;
    assert_error(&r, 401, 40);
    let r = http(
        &h,
        "GET",
        &format!("/longpoll?api_key={KEY}&connection_id={cid}"),
        &auth("someone"),
        None,
    )
    .await;
    assert_error(&r, 403, 17);
    let _: Value = r.body;
    h.shutdown().await;
}

#[tokio::test]
async fn abandoned_longpoll_connections_are_reaped() {
    let cfg = chatstorm_mock::MockConfig {
        longpoll_idle_timeout: Duration::from_millis(200),
        ..config()
    };
    let h = start_with(cfg).await;
    let cid = lp_connect(&h, "gone").await;
    let deadline = Instant::now() + WAIT;
    while h.control.stats().longpoll_connections > 0 {
        assert!(Instant::now() < deadline, "the idle connection was not reaped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_error(&lp_poll(&h, "gone", &cid).await, 400, 46);
    h.shutdown().await;
}
