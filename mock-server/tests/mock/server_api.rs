//! The server-side REST surface a chat backend calls: creates naming their creator, channel
//! update, members, delete, the events they cause and who gets them, server-side reads by
//! non-members, users' lifecycle, app settings and rate limits. (The official Python SDK drives
//! the same calls in `tests/python_sdk.rs`; these tests need no Python.)

use serde_json::{Value, json};

use crate::util::*;

/// A server-side call as the server SDKs make it (server token, `api_key` only; `path` may carry
/// its own query).
async fn server(h: &chatstorm_mock::MockHandle, method: &str, path: &str, body: Value) -> Resp {
    let sep = if path.contains('?') { '&' } else { '?' };
    let headers = [
        ("authorization", server_token()),
        ("stream-auth-type", "jwt".to_owned()),
    ];
    http(h, method, &format!("{path}{sep}api_key={KEY}"), &headers, Some(body)).await
}

#[tokio::test]
async fn server_side_create_takes_its_creator_from_created_by_and_adds_no_one_else() {
    let h = start().await;
    let r = server(
        &h,
        "POST",
        "/channels/messaging/solo/query",
        json!({"data": {"created_by": {"id": "dave"}}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["channel"]["created_by"]["id"], "dave");
    assert_eq!(r.body["members"], json!([]));
    let body = json!({"data": {"members": ["ann", "bob"], "created_by_id": "dave", "color": "red"}});
    let r = server(&h, "POST", "/channels/messaging/duo/query", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["channel"]["created_by"]["id"], "dave", "not the first member");
    assert_eq!(r.body["channel"]["color"], "red");
    assert!(r.body["channel"].get("created_by_id").is_none(), "{}", r.body);
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(2));
    let r = server(
        &h,
        "POST",
        "/channels/messaging/none/query",
        json!({"data": {"members": ["ann"]}}),
    )
    .await;
    assert_error(&r, 400, 4);
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("either data.created_by or data.created_by_id must be provided")),
        "{}",
        r.body
    );
    let both = json!({"data": {"created_by": {"id": "dave"}, "created_by_id": "dave"}});
    assert_error(
        &server(&h, "POST", "/channels/messaging/both/query", both).await,
        400,
        4,
    );
    // A user's own create is unchanged: the caller creates it and is its member.
    let r = rest(&h, "POST", "/channels/messaging/mine/query", "eve", None, json!({})).await;
    assert_eq!(r.body["channel"]["created_by"]["id"], "eve");
    assert_eq!(r.body["members"][0]["user_id"], "eve");
    h.shutdown().await;
}

#[tokio::test]
async fn server_side_send_and_read_by_a_non_member_both_succeed_and_a_users_own_read_does_not() {
    let h = start().await;
    let (mut ann, _) = watcher(&h, "ann", "room", &["ann"]).await;
    let msg = json!({"message": {"text": "hi", "user": {"id": "zed"}}});
    let r = server(&h, "POST", "/channels/messaging/room/message", msg).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(expect_event(&mut ann, "message.new").await["user"]["id"], "zed");
    let r = server(
        &h,
        "POST",
        "/channels/messaging/room/read",
        json!({"user": {"id": "zed"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["event"]["type"], "message.read");
    assert_eq!(expect_event(&mut ann, "message.read").await["user"]["id"], "zed");
    let r = rest(&h, "POST", "/channels/messaging/room/read", "zed", None, json!({})).await;
    assert_error(&r, 403, 17);
    let r = server(&h, "POST", "/channels/messaging/room/read", json!({})).await;
    assert_error(&r, 400, 4);
    h.shutdown().await;
}

#[tokio::test]
async fn member_changes_reach_watchers_and_the_members_own_other_connections() {
    let h = start().await;
    let (mut ann, _) = watcher(&h, "ann", "room", &["ann"]).await;
    let (mut bob, _) = connect(&h, "bob").await;
    let r = server(&h, "POST", "/channels/messaging/room", json!({"add_members": ["bob"]})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(2), "{}", r.body);
    let added = expect_event(&mut ann, "member.added").await;
    assert_eq!(added["member"]["user_id"], "bob");
    assert_eq!(added["user"]["id"], "bob");
    let updated = expect_event(&mut ann, "channel.updated").await;
    assert_eq!(updated["channel_member_count"], 2);
    assert!(
        updated.get("user").is_none(),
        "no acting user on a server-side call: {updated}"
    );
    let note = expect_event(&mut bob, "notification.added_to_channel").await;
    assert_eq!(note["channel"]["cid"], "messaging:room");
    let body = json!({"data": {"topic": "news"}, "remove_members": [{"user_id": "bob"}], "user_id": "ann"});
    let r = server(&h, "POST", "/channels/messaging/room", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["channel"]["topic"], "news");
    assert_eq!(expect_event(&mut ann, "member.removed").await["user"]["id"], "bob");
    let updated = expect_event(&mut ann, "channel.updated").await;
    assert_eq!(updated["channel"]["topic"], "news");
    assert_eq!(updated["user"]["id"], "ann", "the acting user the call named");
    assert_eq!(
        expect_event(&mut bob, "notification.removed_from_channel").await["channel"]["cid"],
        "messaging:room"
    );
    // A user may change only a channel it belongs to.
    let r = rest(
        &h,
        "POST",
        "/channels/messaging/room",
        "bob",
        None,
        json!({"data": {"x": 1}}),
    )
    .await;
    assert_error(&r, 403, 17);
    h.shutdown().await;
}

#[tokio::test]
async fn a_distinct_channel_takes_no_new_members() {
    let h = start().await;
    let r = server(
        &h,
        "POST",
        "/channels/messaging/query",
        json!({"data": {"members": ["a", "b"], "created_by_id": "a"}}),
    )
    .await;
    let id = r.body["channel"]["id"].as_str().expect("id").to_owned();
    let r = server(
        &h,
        "POST",
        &format!("/channels/messaging/{id}"),
        json!({"add_members": ["c"]}),
    )
    .await;
    assert_error(&r, 403, 17);
    h.shutdown().await;
}

#[tokio::test]
async fn delete_announces_to_watchers_and_to_members_elsewhere_and_the_channel_is_gone() {
    let h = start().await;
    let (mut ann, _) = watcher(&h, "ann", "room", &["ann", "bob"]).await;
    let (mut bob, _) = connect(&h, "bob").await;
    let r = rest(&h, "DELETE", "/channels/messaging/room", "bob", None, json!({})).await;
    assert_error(&r, 403, 17);
    let r = server(&h, "DELETE", "/channels/messaging/room", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["channel"]["deleted_at"].is_string(), "{}", r.body);
    assert_eq!(r.body["channel"]["members"].as_array().map(Vec::len), Some(2));
    let gone = expect_event(&mut ann, "channel.deleted").await;
    assert!(gone["channel"]["deleted_at"].is_string(), "{gone}");
    expect_event(&mut bob, "notification.channel_deleted").await;
    let r = server(&h, "DELETE", "/channels/messaging/room", json!({})).await;
    assert_error(&r, 404, 16);
    let r = rest(&h, "POST", "/channels", "bob", None, json!({"filter_conditions": {}})).await;
    assert_eq!(r.body["channels"], json!([]), "bob is a member of nothing now");
    h.shutdown().await;
}

#[tokio::test]
async fn users_deactivate_reactivate_delete_and_query() {
    let h = start().await;
    server(
        &h,
        "POST",
        "/users",
        json!({"users": {"u1": {"id": "u1", "name": "Una"}, "u2": {"id": "u2"}}}),
    )
    .await;
    let r = server(&h, "POST", "/users/u1/deactivate", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["user"]["deactivated_at"].is_string());
    let q = |f: Value| {
        let payload = json!({"filter_conditions": f, "sort": [{"field": "id", "direction": 1}]}).to_string();
        format!(
            "/users?payload={}",
            form_urlencoded::byte_serialize(payload.as_bytes()).collect::<String>()
        )
    };
    let r = server(&h, "GET", &q(json!({"id": {"$in": ["u1", "u2"]}})), Value::Null).await;
    assert_eq!(r.body["users"].as_array().map(Vec::len), Some(1), "{}", r.body);
    assert_error(
        &server(&h, "POST", "/users", json!({"users": {"u1": {"id": "u1"}}})).await,
        400,
        4,
    );
    // A deactivated user cannot connect.
    let mut ws = open(&h, &connect_query("u1", &user_token("u1"), json!({"id": "u1"})), &[]).await;
    let e = expect_rejected(&mut ws, 4).await;
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("was deactivated")),
        "{e}"
    );
    let r = server(&h, "POST", "/users/u1/reactivate", json!({})).await;
    assert!(r.body["user"].get("deactivated_at").is_none(), "{}", r.body);
    assert_error(&server(&h, "POST", "/users/u1/reactivate", json!({})).await, 400, 4);
    // Users cannot manage users.
    assert_error(
        &rest(&h, "POST", "/users/u2/deactivate", "u1", None, json!({})).await,
        403,
        17,
    );
    let r = server(&h, "DELETE", "/users/u2", json!({})).await;
    assert!(r.body["user"]["deleted_at"].is_string(), "{}", r.body);
    let r = server(&h, "GET", &q(json!({})), Value::Null).await;
    let ids: Vec<&str> = r.body["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(ids, ["u1"]);
    assert_error(&server(&h, "DELETE", "/users/nobody", json!({})).await, 404, 16);
    h.shutdown().await;
}

#[tokio::test]
async fn a_deleted_user_is_announced_to_presence_subscribers() {
    let h = start().await;
    let (mut ann, _) = watcher(&h, "ann", "room", &["ann", "carl"]).await;
    let r = server(&h, "DELETE", "/users/carl?mark_messages_deleted=true", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = expect_event(&mut ann, "user.deleted").await;
    assert_eq!(ev["user"]["id"], "carl");
    assert!(ev["user"]["deleted_at"].is_string(), "{ev}");
    assert_eq!(ev["mark_messages_deleted"], true);
    h.shutdown().await;
}

#[tokio::test]
async fn app_settings_and_rate_limits_answer_with_their_shapes() {
    let h = start().await;
    let r = server(&h, "GET", "/app", Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["app"]["channel_configs"]["messaging"]["typing_events"], true);
    let r = server(
        &h,
        "GET",
        "/rate_limits?server_side=true&endpoints=GetRateLimits,GetApp",
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("android").is_none(), "{}", r.body);
    let s = &r.body["server_side"];
    assert_eq!(s.as_object().map(|o| o.len()), Some(2), "{}", r.body);
    assert_eq!(
        s["GetApp"]["remaining"],
        s["GetApp"]["limit"].as_u64().map(|l| l - 1).expect("limit")
    );
    assert_eq!(s["GetRateLimits"]["limit"], 1000);
    assert!(s["GetRateLimits"]["reset"].as_i64().is_some_and(|t| t > now()));
    h.shutdown().await;
}
