//! Fan-out and privacy: typing, read, messages, notifications, watching and presence events.
//!
//! "Nothing arrives" is shown without sleeping: after the action that must not reach a socket, a
//! marker event that must reach it is sent; events on one socket keep their order, so the next
//! event seen has to be the marker.

use serde_json::{Value, json};

use crate::util::*;

async fn typing(h: &chatstorm_mock::MockHandle, user: &str, conn: &str, channel: &str, kind: &str) -> Value {
    let r = rest(
        h,
        "POST",
        &format!("/channels/messaging/{channel}/event"),
        user,
        Some(conn),
        json!({"event": {"type": kind}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["event"].clone()
}

async fn marker(h: &chatstorm_mock::MockHandle, user: &str, channel: &str, name: &str) {
    let r = rest(
        h,
        "POST",
        &format!("/channels/messaging/{channel}/event"),
        user,
        None,
        json!({"event": {"type": "marker", "name": name}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn expect_marker(ws: &mut Ws, name: &str) {
    let ev = next_event(ws).await;
    assert_eq!(ev["type"], "marker", "expected the marker, got {ev}");
    assert_eq!(ev["name"], name);
}

async fn set_privacy(h: &chatstorm_mock::MockHandle, user: &str, key: &str, enabled: bool) {
    let patch = json!({"users": [{"id": user, "set": {"privacy_settings": {key: {"enabled": enabled}}}}]});
    assert_eq!(rest(h, "PATCH", "/users", user, None, patch).await.status, 200);
}

/// Two users watching `messaging:<channel>`, with `user.watching.start` and `user.updated` drained.
async fn pair(h: &chatstorm_mock::MockHandle, channel: &str) -> (Ws, String, Ws, String) {
    let (mut a, acid) = watcher(h, "alice", channel, &["alice", "bob"]).await;
    let (b, bcid) = watcher(h, "bob", channel, &["alice", "bob"]).await;
    let start = expect_event(&mut a, "user.watching.start").await;
    assert_eq!(start["user"]["id"], "bob");
    (a, acid, b, bcid)
}

#[tokio::test]
async fn typing_fans_out_to_watchers_and_the_sender_and_privacy_suppresses_it() {
    let h = start().await;
    let (mut a, acid, mut b, _) = pair(&h, "t1").await;
    let echo = typing(&h, "alice", &acid, "t1", "typing.start").await;
    assert_eq!(echo["type"], "typing.start");
    for ws in [&mut a, &mut b] {
        let ev = expect_event(ws, "typing.start").await;
        assert_eq!(ev["user"]["id"], "alice");
        assert_eq!(ev["cid"], "messaging:t1");
        assert_eq!(ev["channel_type"], "messaging");
        assert!(ev["created_at"].is_string());
    }
    set_privacy(&h, "alice", "typing_indicators", false).await;
    assert_eq!(next_event(&mut a).await["type"], "user.updated");
    let echo = typing(&h, "alice", &acid, "t1", "typing.start").await;
    assert_eq!(
        echo["type"], "typing.start",
        "suppressed typing is still echoed with 201"
    );
    marker(&h, "bob", "t1", "m1").await;
    expect_marker(&mut b, "m1").await;
    expect_marker(&mut a, "m1").await;
    // The violation switch makes the suppressed event go out.
    h.control
        .set_violation(chatstorm_mock::Violation::TypingIgnoresPrivacy, true);
    typing(&h, "alice", &acid, "t1", "typing.stop").await;
    assert_eq!(next_event(&mut b).await["type"], "typing.stop");
    h.shutdown().await;
}

#[tokio::test]
async fn no_sender_fanout_keeps_typing_from_the_senders_own_socket() {
    let h = start().await;
    let (mut a, acid, mut b, _) = pair(&h, "t2").await;
    h.control.set_violation(chatstorm_mock::Violation::NoSenderFanout, true);
    typing(&h, "alice", &acid, "t2", "typing.start").await;
    assert_eq!(next_event(&mut b).await["type"], "typing.start");
    marker(&h, "bob", "t2", "m").await;
    expect_marker(&mut a, "m").await;
    h.shutdown().await;
}

#[tokio::test]
async fn read_goes_to_watchers_and_mark_read_to_self_and_privacy_hides_it() {
    let h = start().await;
    let (mut a, acid, mut b, _) = pair(&h, "r1").await;
    let r = rest(
        &h,
        "POST",
        "/channels/messaging/r1/read",
        "alice",
        Some(&acid),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["event"]["type"], "message.read");
    assert_eq!(next_event(&mut b).await["type"], "message.read");
    let mut own = vec![
        next_event(&mut a).await["type"].clone(),
        next_event(&mut a).await["type"].clone(),
    ];
    own.sort_by_key(|v| v.to_string());
    assert_eq!(own, [json!("message.read"), json!("notification.mark_read")]);

    set_privacy(&h, "alice", "read_receipts", false).await;
    assert_eq!(next_event(&mut a).await["type"], "user.updated");
    let r = rest(
        &h,
        "POST",
        "/channels/messaging/r1/read",
        "alice",
        Some(&acid),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 201, "read with receipts off still succeeds");
    marker(&h, "bob", "r1", "after-read").await;
    expect_marker(&mut b, "after-read").await;
    let mut seen = Vec::new();
    loop {
        let ev = next_event(&mut a).await;
        if ev["type"] == "marker" {
            break;
        }
        seen.push(ev["type"].as_str().unwrap_or("").to_owned());
    }
    assert!(
        seen.contains(&"notification.mark_read".to_owned()),
        "own connections still get notification.mark_read: {seen:?}"
    );
    // Bob's view of the channel leaves alice out of `read`; alice still sees herself.
    let state = rest(
        &h,
        "POST",
        "/channels/messaging/r1/query",
        "bob",
        None,
        json!({"state": true}),
    )
    .await;
    let readers: Vec<&str> = state.body["read"]
        .as_array()
        .expect("read")
        .iter()
        .filter_map(|r| r["user"]["id"].as_str())
        .collect();
    assert_eq!(readers, ["bob"]);
    let mine = rest(
        &h,
        "POST",
        "/channels/messaging/r1/query",
        "alice",
        None,
        json!({"state": true}),
    )
    .await;
    assert_eq!(mine.body["read"].as_array().map(Vec::len), Some(2));
    h.control
        .set_violation(chatstorm_mock::Violation::ReadIgnoresPrivacy, true);
    let state = rest(
        &h,
        "POST",
        "/channels/messaging/r1/query",
        "bob",
        None,
        json!({"state": true}),
    )
    .await;
    assert_eq!(state.body["read"].as_array().map(Vec::len), Some(2));
    rest(
        &h,
        "POST",
        "/channels/messaging/r1/read",
        "alice",
        Some(&acid),
        json!({}),
    )
    .await;
    assert_eq!(next_event(&mut b).await["type"], "message.read");
    h.shutdown().await;
}

#[tokio::test]
async fn no_mark_read_to_self_drops_the_notification() {
    let h = start().await;
    let (mut a, acid, _b, _) = pair(&h, "r2").await;
    h.control
        .set_violation(chatstorm_mock::Violation::NoMarkReadToSelf, true);
    rest(
        &h,
        "POST",
        "/channels/messaging/r2/read",
        "alice",
        Some(&acid),
        json!({}),
    )
    .await;
    assert_eq!(next_event(&mut a).await["type"], "message.read");
    marker(&h, "bob", "r2", "m").await;
    expect_marker(&mut a, "m").await;
    h.shutdown().await;
}

#[tokio::test]
async fn messages_reach_watchers_and_notify_members_who_do_not_watch() {
    let h = start().await;
    let (mut a, acid) = watcher(&h, "amy", "m1", &["amy", "ben", "cat"]).await;
    let (mut c, cat_first) = connect(&h, "cat").await;
    let r = rest(
        &h,
        "POST",
        "/channels/messaging/m1/message",
        "amy",
        Some(&acid),
        json!({"message": {"id": "msg-1", "text": "hi <b>"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["message"]["id"], "msg-1");
    assert_eq!(r.body["message"]["type"], "regular");
    let own = expect_event(&mut a, "message.new").await;
    assert_eq!(own["message"]["text"], "hi <b>");
    assert_eq!(own["unread_count"], 0);
    let note = next_event(&mut c).await;
    assert_eq!(note["type"], "notification.message_new");
    assert_eq!(note["channel"]["cid"], "messaging:m1");
    assert_eq!(note["unread_count"], 1);
    assert_eq!(note["total_unread_count"], 1);
    let dup = rest(
        &h,
        "POST",
        "/channels/messaging/m1/message",
        "amy",
        None,
        json!({"message": {"id": "msg-1", "text": "again"}}),
    )
    .await;
    assert_error(&dup, 400, 4);
    // A reconnecting member sees the unread counters in `me`, and /sync replays the message.
    let (_c2, first) = connect(&h, "cat").await;
    assert_eq!(first["me"]["total_unread_count"], 1);
    assert_eq!(first["me"]["unread_channels"], 1);
    let since = cat_first["created_at"].clone();
    let s = rest(
        &h,
        "POST",
        "/sync",
        "cat",
        None,
        json!({"channel_cids": ["messaging:m1", "messaging:gone"], "last_sync_at": since}),
    )
    .await;
    assert_eq!(s.status, 201, "{}", s.body);
    assert_eq!(s.body["events"][0]["type"], "message.new");
    assert_eq!(s.body["events"][0]["message"]["id"], "msg-1");
    assert_eq!(s.body["inaccessible_cids"], json!(["messaging:gone"]));
    let later = rest(
        &h,
        "POST",
        "/sync",
        "cat",
        None,
        json!({"channel_cids": ["messaging:m1"], "last_sync_at": first["created_at"]}),
    )
    .await;
    assert_eq!(later.body["events"], json!([]));
    assert_error(
        &rest(&h, "POST", "/sync", "cat", None, json!({"channel_cids": []})).await,
        400,
        4,
    );
    let too_old = json!({"channel_cids": ["messaging:m1"], "last_sync_at": "2000-01-01T00:00:00Z"});
    assert_error(&rest(&h, "POST", "/sync", "cat", None, too_old).await, 400, 4);
    h.shutdown().await;
}

#[tokio::test]
async fn watching_and_presence_events_follow_connections() {
    let h = start().await;
    let (mut a, _acid, mut b, bcid) = pair(&h, "p1").await;
    let r = rest(
        &h,
        "POST",
        "/channels/messaging/p1/stop-watching",
        "bob",
        Some(&bcid),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200);
    let stop = next_event(&mut a).await;
    assert_eq!(stop["type"], "user.watching.stop");
    assert_eq!(stop["user"]["id"], "bob");
    // Bob no longer watches: alice's typing does not reach him, a member notification would.
    marker(&h, "alice", "p1", "after-stop").await;
    expect_marker(&mut a, "after-stop").await;
    drop(b.close(None).await);
    let presence = next_event(&mut a).await;
    assert_eq!(presence["type"], "user.presence.changed");
    assert_eq!(presence["user"]["id"], "bob");
    assert_eq!(presence["user"]["online"], false);

    h.control
        .set_violation(chatstorm_mock::Violation::NoPresenceEvent, true);
    let (b2, _) = watcher(&h, "bob", "p1", &["alice", "bob"]).await;
    assert_eq!(expect_event(&mut a, "user.watching.start").await["user"]["id"], "bob");
    drop(b2);
    assert_eq!(next_event(&mut a).await["type"], "user.watching.stop");
    marker(&h, "alice", "p1", "no-presence").await;
    expect_marker(&mut a, "no-presence").await;
    h.shutdown().await;
}
